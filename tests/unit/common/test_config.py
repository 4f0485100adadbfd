from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.config import load


def test_defaults(tmp_path: Path) -> None:
    config = load(environ={})
    assert config.root == "/var/lib/flotilla"
    assert config.state == "/run/flotilla"
    assert config.node  # the host name
    assert config.nats.urls == ()


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('root = "/data"\nnode_id = "a"\n[nats]\nport = 5000\n')
    env = {"FLOTILLA_NODE_ID": "b", "FLOTILLA_NATS__URLS": "nats://x:1, nats://y:2",
           "FLOTILLA_NATS__PORT": "6000"}  # fmt: skip
    config = load(path, environ=env)
    assert (config.root, config.node) == ("/data", "b")
    assert config.nats.urls == ("nats://x:1", "nats://y:2")
    assert config.nats.port == 6000


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('log_level = "debug"\n')
    assert load(environ={"FLOTILLA_CONFIG": str(path)}).log_level == "debug"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[nats]\nport = 'many'\n", "$.nats.port"),
        ("log_level = 'loud'\n", "$.log_level"),
        ("colour = 'blue'\n", "colour"),
        ("[nats]\nurl = 'x'\n", "url"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(errdefs.InvalidArgument, match=names.replace("$", r"\$")):
        load(path, environ={})


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("root = \n")
    with pytest.raises(errdefs.InvalidArgument, match=r"c\.toml"):
        load(path, environ={})
    with pytest.raises(errdefs.NotFound):
        load(tmp_path / "nope.toml", environ={})
