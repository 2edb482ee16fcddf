from tests.readme_matrix import README, expected


def test_readme_support_matrix_is_generated_from_the_data() -> None:
    text = README.read_text()
    assert expected(text) == text, "run: python -m tests.readme_matrix --write"
