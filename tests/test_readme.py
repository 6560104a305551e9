"""The README as a new user follows it: every ```bash block from Serving through Model versions, in order, in one
shell, in a copy of the repository (with ../shared beside it, where the README's photos are). The test brings only
what a user brings: the ImageNet VGG16 file that the Serving block names (random weights in its layout), and free
ports in place of the config's (a server of the user's may hold those). Everything else is the README's own."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from animals.labels import ANIMALS
from serving.client import RestClient
from serving.config import read_config
from serving.server import stop
from tests.support import REPO_ROOT, copy_of_repository, environment_of_a_new_shell, write_config

STORY = ("Serving", "Model versions and management")  # the first and the last section the story runs through
WEIGHTS_PLACEHOLDER = "/path/to/vgg16-397923af.pth"
URL_KEYS = ("inference_address", "management_address", "metrics_address")
STORY_TIMEOUT_S = 1500


def readme_sections() -> list[tuple[str, str]]:
    """The README's `## ` sections as (title, body), in order."""
    text = (REPO_ROOT / "README.md").read_text()
    return [(part.split("\n", 1)[0], part) for part in text.split("\n## ")[1:]]


def story_blocks() -> list[str]:
    """The ```bash blocks of the sections from STORY's first to its last, in order."""
    titles = [title for title, _ in readme_sections()]
    first, last = (titles.index(title) for title in STORY)
    bodies = [body for _, body in readme_sections()[first : last + 1]]
    return [block for body in bodies for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)]


def top5_answers(text: str) -> list[dict]:
    """The JSON objects in a shell's output that are top-5 answers: five animals, highest first."""
    answers = []
    for candidate in re.findall(r"\{[^{}]*\}", text):
        try:
            answer = json.loads(candidate)
        except ValueError:
            continue
        if len(answer) == 5 and set(answer) <= set(ANIMALS) and list(answer.values()) == sorted(answer.values())[::-1]:
            answers.append(answer)
    return answers


@pytest.mark.slow
@pytest.mark.timeout(STORY_TIMEOUT_S + 60)
def test_the_readme_runs_as_written_from_serving_through_model_versions(tmp_path, vgg16_weights):
    blocks = story_blocks()
    script = "PS4='+ ${SECONDS}s '\nset -euxo pipefail\n" + "\n".join(blocks)  # -x: each command, seconds so far
    assert (
        f"export VGG16_WEIGHTS={WEIGHTS_PLACEHOLDER}" in script
        and "make train DATA=" in script
        and "rollback" in script
    )
    repo = copy_of_repository(tmp_path / "repo")
    (tmp_path / "shared").symlink_to(REPO_ROOT.parent / "shared")
    shipped = read_config(repo / "config.properties")
    config = write_config(repo, repo / "config.properties")
    for key in URL_KEYS:
        script = script.replace(shipped.properties[key].split("//")[1], config.properties[key].split("//")[1])
    script = script.replace(WEIGHTS_PLACEHOLDER, str(vgg16_weights))
    env = environment_of_a_new_shell()
    try:
        shell = subprocess.run(
            ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=STORY_TIMEOUT_S
        )
        out = shell.stdout
        (tmp_path / "story.out").write_text(out + shell.stderr)
        assert shell.returncode == 0, out[-4000:] + shell.stderr[-4000:]
        client = RestClient(config)
        assert client.default_version() == "3.0" and client.versions() == {"1.0", "1.1", "3.0"}
    finally:
        stop(config)
    assert f"ImageNet vgg16 with the zero-shot animal head (VGG16_WEIGHTS={vgg16_weights})" in out
    assert len(top5_answers(out)) >= 3 and '"reason": "not_image"' in out  # the three REST forms, the text file's 400
    assert (repo / "heat.png").read_bytes().startswith(b"\x89PNG")
    runs = [path for path in (repo / "artifacts").iterdir() if path.is_dir()]
    assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()
    assert f"serving trained run {runs[0]} as version 1.1" in out
    assert "Making 2.0 the default" not in out and "Rolling back from 3.0 to 1.1" in out
    assert not (repo / "model_store" / "animals-2.0.mar").exists()
    assert Path(repo / "model_store" / "animals-3.0.mar").is_file()
