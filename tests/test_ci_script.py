""".ci/run does what a newcomer does: README's install command in a fresh virtual
environment, then exactly README's test command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of README's first shell block (Install and test), comments dropped."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_ci_runs_readme_test_command_last():
    install, test = readme_commands()
    script = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
              if line.strip() and not line.strip().startswith("#")]
    assert script[-1] == test
    assert test.startswith("python3 -m pytest")
    extras = re.search(r"-e '(\.\[[^\]]*\])'", install).group(1)
    assert any(f"-e '{extras}'" in line for line in script)


def test_ci_installs_into_a_fresh_virtual_environment():
    text = (ROOT / ".ci/run").read_text()
    assert re.search(r"python3 -m venv \S+", text)
    assert re.search(r"source \S+/bin/activate", text)
    assert text.index("source") < text.index("pip install -e")
