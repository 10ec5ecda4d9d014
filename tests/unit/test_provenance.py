"""The code fingerprint evaluations record: any source edit changes it, documentation does not."""

from learn2adapt import __version__
from learn2adapt.provenance import code_version, fingerprint


def test_fingerprint_follows_sources_presets_and_names_only(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "presets").mkdir()
    (tmp_path / "models" / "mlp.py").write_text("x = 1\n")
    (tmp_path / "presets" / "a.toml").write_text("[quick]\n")
    first = fingerprint(tmp_path)
    assert len(first) == 12 and fingerprint(tmp_path) == first
    (tmp_path / "README.md").write_text("notes")  # not code
    assert fingerprint(tmp_path) == first
    (tmp_path / "models" / "mlp.py").write_text("x = 1  # why\n")  # a comment is an edit
    edited = fingerprint(tmp_path)
    assert edited != first
    (tmp_path / "presets" / "a.toml").write_text("[paper]\n")
    assert fingerprint(tmp_path) not in (first, edited)
    (tmp_path / "presets" / "a.toml").write_text("[quick]\n")
    (tmp_path / "models" / "mlp.py").rename(tmp_path / "models" / "net.py")  # same bytes, other name
    assert fingerprint(tmp_path) not in (first, edited)


def test_code_version_names_the_package_version():
    version, _, digits = code_version().partition("+")
    assert version == __version__ and len(digits) == 12 and int(digits, 16) >= 0
