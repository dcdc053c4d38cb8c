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
