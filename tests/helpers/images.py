"""What a written image must be: a PNG, big enough to hold a drawing, alone in its folder."""
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_bytes: int = 2000) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > min_bytes
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
