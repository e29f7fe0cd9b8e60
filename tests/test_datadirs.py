"""The spec search path: add_spec_dir() dirs, then PERFSIM_PATH, then the shipped specs; the first name wins."""

import json
import os
from pathlib import Path

import pytest

from perfsim import datadirs
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware, shipped_names
from perfsim.models import load_model, shipped_models
from perfsim.specfile import shown
from perfsim.validation.case import load_cases

SHIPPED = datadirs.shipped_dir("hardware")
H100 = (SHIPPED / "h100-sxm.yaml").read_text()


@pytest.fixture(autouse=True)
def clean_path(monkeypatch):
    """No directory added and no PERFSIM_PATH, whatever the caller's environment."""
    monkeypatch.setattr(datadirs, "_added", [])
    monkeypatch.delenv(datadirs.ENV_VAR, raising=False)


def _device(directory: Path, name: str, hbm: str = "3.35 TB/s") -> Path:
    """An H100 copy called `name` with HBM bandwidth `hbm`, written to directory/name.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(H100.replace("name: h100-sxm", f"name: {name}").replace("3.35 TB/s", hbm))
    return path


def test_a_device_in_perfsim_path_is_found_by_name(tmp_path, monkeypatch, cli):
    _device(tmp_path / "team" / "hardware_specs", "team-gpu", "1 TB/s")
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path / "team"))
    assert load_hardware("team-gpu").main.bandwidth == 1e12  # "1 TB/s" = 1e12 B/s, decimal
    assert "team-gpu" in shipped_names() and "h100-sxm" in shipped_names()
    result = cli("hardware", "show", "team-gpu", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["name"] == "team-gpu"
    assert "team-gpu" in cli("hardware", "list", "--format", "csv").out


def test_files_directly_in_a_directory_are_told_apart_by_their_top_level_field(tmp_path, monkeypatch):
    _device(tmp_path, "team-gpu")
    model = (datadirs.shipped_dir("model") / "llama-2-7b.yaml").read_text().replace("name: llama-2-7b", "name: team-lm")
    (tmp_path / "team-lm.yaml").write_text(model)
    (tmp_path / "decode.yaml").write_text("model: team-lm\nhardware: team-gpu\n")  # a scenario: no spec
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    assert "team-gpu" in shipped_names() and "team-lm" not in shipped_names() and "decode" not in shipped_names()
    assert "team-lm" in shipped_models() and "team-gpu" not in shipped_models() and "decode" not in shipped_models()
    assert load_model("team-lm").layers == 32  # Llama 2 7B has 32 layers
    with pytest.raises(PerfsimError, match="unknown hardware 'team-lm'"):
        load_hardware("team-lm")


def test_a_user_file_shadows_the_shipped_one_of_the_same_name(tmp_path, monkeypatch):
    _device(tmp_path / "hardware_specs", "h100-sxm", "2 TB/s")
    assert load_hardware("h100-sxm").main.bandwidth == 3.35e12  # shipped: 3.35 TB/s
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    assert load_hardware("h100-sxm").main.bandwidth == 2e12
    assert shipped_names().count("h100-sxm") == 1
    files = datadirs.spec_files("hardware")
    assert datadirs.origin(files["h100-sxm"], "hardware") == str(tmp_path / "hardware_specs")
    assert datadirs.origin(files["mi300x"], "hardware") == "shipped"


def test_first_directory_wins_added_dirs_before_perfsim_path_left_to_right(tmp_path, monkeypatch):
    for name, hbm in (("a", "1 TB/s"), ("b", "2 TB/s"), ("c", "3 TB/s")):
        _device(tmp_path / name, "team-gpu", hbm)
    monkeypatch.setenv(datadirs.ENV_VAR, os.pathsep.join([str(tmp_path / "b"), "", str(tmp_path / "c")]))
    assert load_hardware("team-gpu").main.bandwidth == 2e12  # b before c; the empty entry is skipped
    datadirs.add_spec_dir(tmp_path / "a")
    assert load_hardware("team-gpu").main.bandwidth == 1e12  # an added directory before PERFSIM_PATH
    assert datadirs.user_dirs() == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]


def test_searching_adds_directories_for_the_block_only(tmp_path):
    _device(tmp_path / "a", "team-gpu", "1 TB/s")
    _device(tmp_path / "b", "team-gpu", "2 TB/s")
    datadirs.add_spec_dir(tmp_path / "b")
    with datadirs.searching([tmp_path / "a"]):
        assert datadirs.user_dirs() == [tmp_path / "b", tmp_path / "a"]
        assert load_hardware("team-gpu").main.bandwidth == 2e12  # b was added first
    assert datadirs.user_dirs() == [tmp_path / "b"]
    with pytest.raises(PerfsimError, match="not a directory"), datadirs.searching([tmp_path / "a", tmp_path / "x"]):
        pass
    assert datadirs.user_dirs() == [tmp_path / "b"]


def test_the_subfolder_is_searched_before_the_directory_itself(tmp_path, monkeypatch):
    _device(tmp_path, "team-gpu", "1 TB/s")
    _device(tmp_path / "hardware_specs", "team-gpu", "2 TB/s")
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    assert load_hardware("team-gpu").main.bandwidth == 2e12


def test_a_user_system_names_user_and_shipped_members(tmp_path, monkeypatch):
    specs = tmp_path / "hardware_specs"
    _device(specs, "team-gpu")
    dgx = (SHIPPED / "dgx-h100.yaml").read_text().replace("name: dgx-h100", "name: team-node")
    (specs / "team-node.yaml").write_text(dgx.replace("member: h100-sxm", "member: team-gpu"))
    (specs / "team-dgx.yaml").write_text(dgx.replace("name: team-node", "name: team-dgx"))
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    node = load_hardware("team-node")
    assert (node.device.name, node.chips) == ("team-gpu", 8)  # dgx-h100 has count: 8
    assert load_hardware("team-dgx").device.name == "h100-sxm"


def test_a_user_case_file_shadows_the_shipped_one(tmp_path, monkeypatch):
    shipped = load_cases()
    text = (datadirs.shipped_dir("case") / "mcu.yaml").read_text()
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "mcu.yaml").write_text(text.replace("published: 3.11", "published: 6.22"))
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    cases = load_cases()
    assert [c.id for c in cases] == [c.id for c in shipped]  # same file name: replaced, not added (no duplicate id)
    assert next(c.published for c in cases if c.id == "ODL-02") == 6.22


def test_an_unknown_name_lists_the_directories_searched(tmp_path, monkeypatch):
    (tmp_path / "hardware_specs").mkdir()
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    with pytest.raises(PerfsimError) as err:
        load_hardware("h100-sx")
    assert str(err.value) == (
        f"unknown hardware 'h100-sx' (did you mean 'h100-sxm'?); searched {tmp_path / 'hardware_specs'}, {tmp_path}, "
        f"{shown(SHIPPED)}; see `perfsim hardware list`, or give a path to a .yaml file")


def test_a_search_directory_that_is_not_one_is_an_error(tmp_path, monkeypatch, cli):
    with pytest.raises(PerfsimError, match=r"spec directory .*missing: not a directory"):
        datadirs.add_spec_dir(tmp_path / "missing")
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path / "missing"))
    result = cli("hardware", "list")
    assert (result.code, result.err) == (2, f"perfsim: error: PERFSIM_PATH {tmp_path / 'missing'}: not a directory\n")


def test_a_malformed_file_in_a_search_directory_names_the_file(tmp_path, monkeypatch, cli):
    (tmp_path / "broken.yaml").write_text("kind: [accelerator\n")
    monkeypatch.setenv(datadirs.ENV_VAR, str(tmp_path))
    result = cli("hardware", "list")
    assert result.code == 2
    assert result.err.startswith(f"perfsim: error: {tmp_path / 'broken.yaml'}: malformed YAML")
