import sys

from gimme.cli import main

sys.exit(main())
