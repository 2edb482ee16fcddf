"""Cluster PKI: a real CA, serving and client certificates, kubeconfigs, the discovery hash."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _key(ca: bool = False):
    """RSA-2048 for the CA (kubeadm's default); ECDSA P-256 for leaf certificates, which is
    much cheaper to generate and which kubeadm also supports (encryptionAlgorithm)."""
    if ca:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())  # fmt: skip


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(cn: str = "kubernetes") -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) of a new self-signed CA."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert), key_pem(key)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, cn: str, org: str | None = None,
          sans: list[str] | None = None, server: bool = False) -> tuple[bytes, bytes]:  # fmt: skip
    """(cert PEM, key PEM) signed by the CA; `sans` are DNS names or IPs."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    x509.ExtendedKeyUsageOID.SERVER_AUTH
                    if server
                    else x509.ExtendedKeyUsageOID.CLIENT_AUTH
                ]
            ),
            critical=False,
        )  # fmt: skip
    )
    if sans:
        names: list[x509.GeneralName] = []
        for s in dict.fromkeys(sans):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return cert_pem(builder.sign(ca_key, hashes.SHA256())), key_pem(key)


def ca_hash(ca_cert_pem: bytes) -> str:
    """kubeadm's discovery hash: sha256 over the CA's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(server: str, ca_pem: bytes, user: str, cert_pem_: bytes, key_pem_: bytes,
               cluster: str = "kubernetes") -> str:  # fmt: skip
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "cluster": {"certificate-authority-data": b64(ca_pem), "server": server},
                    "name": cluster,
                }
            ],
            "contexts": [
                {"context": {"cluster": cluster, "user": user}, "name": f"{user}@{cluster}"}
            ],
            "current-context": f"{user}@{cluster}",
            "preferences": {},
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(cert_pem_),
                        "client-key-data": b64(key_pem_),
                    },
                }
            ],  # fmt: skip
        },
        sort_keys=False,
    )


def write_private(path: str | Path, data: bytes | str, mode: int = 0o600) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
