"""The command-line tools a user runs (the README's commands): every option says what it does in
--help, and every default is shown there."""

import argparse
import importlib
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOOLS = ["dali_msda.demo", "dali_msda.analysis", "dali_msda.pipelines.train",
         "dali_msda.pipelines.train_seg", "dali_msda.pipelines.scan",
         "benchmarks/op_cost", "benchmarks/throughput", "benchmarks/loop_cost",
         "benchmarks/ce_cost", "benchmarks/data_checks", "benchmarks/soak"]


class _Parsed(Exception):
    pass


def parser_of(tool, monkeypatch):
    """The ArgumentParser the tool's main() builds, caught when main() parses."""
    if tool.startswith("benchmarks/"):
        name = tool.split("/")[1]
        spec = importlib.util.spec_from_file_location(f"_cli_{name}",
                                                      os.path.join(ROOT, f"{tool}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(tool)

    def caught(self, *args, **kwargs):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", caught)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", caught)
    monkeypatch.setattr("sys.argv", [tool])
    with pytest.raises(_Parsed) as parsed:
        module.main()
    return parsed.value.args[0]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_option_says_what_it_does_and_its_default(tool, monkeypatch):
    ap = parser_of(tool, monkeypatch)
    monkeypatch.setenv("COLUMNS", "10000")  # one line an option: no word broken at a hyphen
    options = [a for a in ap._actions if a.option_strings and a.help != argparse.SUPPRESS
               and not isinstance(a, argparse._HelpAction)]
    assert options
    assert [a.option_strings[0] for a in options if not a.help] == []
    shown = " ".join(ap.format_help().split())
    for a in options:
        if a.default is not None and a.default is not False:
            # the default in the option's help line (a list default as the list)
            help_text = " ".join((ap.formatter_class(ap.prog)._get_help_string(a)
                                  % {"default": a.default}).split())
            assert "default" in help_text, (a.option_strings, help_text)
            assert help_text in shown, (a.option_strings, help_text)


# (tool, flag, value, rule): each number a tool takes, out of its range, is a usage error naming
# the flag, the rule and the value, before anything runs (no DALI or torch traceback, no run on
# a value that makes no sense: a NaN learning rate, a negative seed that DALI takes for "random")
OUT_OF_RANGE = [
    *[("dali_msda.pipelines.train", flag, value, rule) for flag, value, rule in (
        ("--epochs", "0", "an integer >= 1"), ("--steps", "-1", "an integer >= 0"),
        ("--batch-size", "0", "an integer >= 1"), ("--lr", "nan", "a finite number > 0"),
        ("--lr", "-0.1", "a finite number > 0"), ("--width", "0", "an integer >= 1"),
        ("--crop", "0", "an integer >= 1"), ("--threads", "0", "an integer >= 1"),
        ("--mix-off-epochs", "-1", "an integer >= 0"),
        ("--mixup-off-epoch", "-1", "an integer >= 0"),
        ("--checkpoint-every", "-2", "an integer >= 0"),
        ("--seed", "-1", "an integer in [0, 2147483647]"),
        ("--seed", "2147483648", "an integer in [0, 2147483647]"),
        ("--batch-size", "x", "an integer >= 1"))],
    *[("dali_msda.pipelines.train_seg", flag, value, rule) for flag, value, rule in (
        ("--num-classes", "0", "an integer >= 1"), ("--epochs", "0", "an integer >= 1"),
        ("--batch-size", "0", "an integer >= 1"), ("--crop", "0", "an integer >= 1"),
        ("--lr", "inf", "a finite number > 0"), ("--width", "0", "an integer >= 1"),
        ("--threads", "0", "an integer >= 1"),
        ("--seed", "-3", "an integer in [0, 2147483647]"))],
    ("dali_msda.demo", "--alpha", "0", "a finite number > 0"),
    ("dali_msda.demo", "--seed", "-1", "an integer in [0, 2147483647]"),
    ("benchmarks/op_cost", "--batch", "0", "an integer >= 1"),
    ("benchmarks/op_cost", "--cold-mib", "-1", "an integer >= 0"),
    ("benchmarks/throughput", "--rounds", "0", "an integer >= 1"),
    ("benchmarks/loop_cost", "--iters", "0", "an integer >= 1"),
    ("benchmarks/ce_cost", "--classes", "0", "an integer >= 1"),
    ("benchmarks/data_checks", "--batches", "0", "an integer >= 1"),
    ("benchmarks/soak", "--warmup", "-1", "an integer >= 0"),
    ("benchmarks/soak", "--every", "0", "an integer >= 1"),
]


@pytest.mark.parametrize("tool", [t for t in TOOLS if t.startswith("benchmarks/")])
def test_a_benchmarks_json_that_is_a_folder_is_a_usage_error(tool, tmp_path, monkeypatch,
                                                             capsys):
    """A benchmark's results file (--json, or --out of the loop and loss benchmarks) naming a
    folder is refused when the command line is read, not after the timings (a soak's hour)."""
    ap = parser_of(tool, monkeypatch)
    monkeypatch.undo()
    flag = "--out" if tool in ("benchmarks/loop_cost", "benchmarks/ce_cost") else "--json"
    with pytest.raises(SystemExit) as e:
        ap.parse_args([flag, str(tmp_path)])
    assert e.value.code == 2
    assert f"argument {flag}: {str(tmp_path)!r} is a folder; give the file to write" in \
        capsys.readouterr().err


@pytest.mark.parametrize("tool,flag,value,rule", OUT_OF_RANGE)
def test_numbers_out_of_range_are_usage_errors(tool, flag, value, rule, monkeypatch, capsys):
    ap = parser_of(tool, monkeypatch)
    monkeypatch.undo()  # the real parse_args again, on the tool's parser
    with pytest.raises(SystemExit) as e:
        ap.parse_args([flag, value])
    assert e.value.code == 2
    assert f"argument {flag}: must be {rule}; got '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("tool,argv,message", [
    ("dali_msda.pipelines.train", ["--cutmix", "1", "--cutmix-minmax", "0.9", "0.1"],
     "MixConfig: `cutmix_minmax` must satisfy 0 < min < max <= 1; got (0.9, 0.1)."),
    ("dali_msda.pipelines.train", ["--alpha", "0"],
     "MixConfig: `alpha` must be a finite number > 0; got 0.0."),
    ("dali_msda.pipelines.train_seg", ["--alpha", "0"],
     "MixConfig: `alpha` must be a finite number > 0; got 0.0."),
    ("dali_msda.pipelines.train_seg", ["--prob", "1.5"],
     "MixConfig: `prob` must be in [0, 1]; got 1.5.")])
def test_a_bad_mixing_recipe_is_a_usage_error(tool, argv, message, capsys):
    """The recipe the flags state is checked when the command line is read (a usage error,
    exit status 2, nothing built or started), not when the pipeline first runs."""
    main = importlib.import_module(tool).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and message in err and "Traceback" not in err


@pytest.mark.parametrize("tool,flag,kind", [
    ("dali_msda.pipelines.train", "--json", "folder"),
    ("dali_msda.pipelines.train", "--log-batches", "folder"),
    ("dali_msda.pipelines.train", "--checkpoint-dir", "file"),
    ("dali_msda.pipelines.train_seg", "--json", "folder"),
    ("dali_msda.pipelines.scan", "--json", "folder"),
    ("dali_msda.pipelines.scan", "--out", "folder"),
    ("dali_msda.pipelines.scan", "--convert-masks", "file")])
def test_output_paths_that_cannot_be_written_are_usage_errors(tool, flag, kind, tmp_path,
                                                              capsys):
    """A summary, log, report or checkpoint folder that cannot be written is refused when the
    command line is read (exit status 2, naming the flag and the path), not after the run it
    would record (a training's hours, a scan of a million files)."""
    path = tmp_path / "taken"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_text("a file")
    argv = [flag, str(path)] + ({"scan": [str(tmp_path)]}.get(tool.split(".")[-1], []))
    if tool.endswith("scan"):
        argv += ["--segmentation"] if flag == "--convert-masks" else []
    with pytest.raises(SystemExit) as e:
        importlib.import_module(tool).main(argv)
    assert e.value.code == 2
    wanted = "is a folder; give the file to write" if kind == "folder" else \
        "is a file; give a folder"
    assert f"{flag} {str(path)!r} {wanted}" in capsys.readouterr().err
    assert path.is_dir() == (kind == "folder")  # nothing of the user's replaced


def test_an_output_files_folder_is_made(tmp_path, monkeypatch):
    from dali_msda._cli import check_output_paths

    ap = argparse.ArgumentParser()
    target = tmp_path / "a" / "b" / "summary.json"
    check_output_paths(ap, files=[("--json", str(target))])
    assert target.parent.is_dir() and not target.exists()
    (tmp_path / "blocker").write_text("x")  # a file where a folder would go
    with pytest.raises(SystemExit):
        check_output_paths(ap, files=[("--json", str(tmp_path / "blocker" / "s.json"))])
