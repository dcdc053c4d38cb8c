"""What the command-line tools share (the training examples, the scanner, the demo, the
analysis and the benchmarks)."""

import argparse
import math
import os


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and every option's default in --help (options whose default
    is None state theirs in their help, as it depends on the other flags)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is not None and default is not False and default is not argparse.SUPPRESS \
                and "(default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def checked(convert, rule, ok):
    """An argparse `type`: `convert(text)` where it converts and `ok` holds for the value, else
    the usage error "argument --NAME: must be RULE; got 'VALUE'" (the argument, the rule and the
    value)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        return value
    parse.__name__ = rule
    return parse


def int_at_least(low, high=None):
    """An argparse `type`: an integer >= `low` (and <= `high` if given)."""
    rule = f">= {low}" if high is None else f"in [{low}, {high}]"
    return checked(int, f"an integer {rule}",
                   lambda v: v >= low and (high is None or v <= high))


# a --seed: DALI takes a negative seed for "draw one at random" (not reproducible), and the
# training examples derive each rank's seed as seed * 1000 + ... in int64
SEED = int_at_least(0, 2 ** 31 - 1)
# a learning rate, say
positive_float = checked(float, "a finite number > 0", lambda v: v > 0 and math.isfinite(v))
# a probability, a ratio (NaN refused: no comparison holds for it)
unit_float = checked(float, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)


def check_output_paths(ap, files=(), folders=()):
    """Where a tool will write, checked before it runs (a training run must not end, hours in,
    on a summary it cannot write): each (flag, path) of `files` must not be a folder, and its
    folder is made; each of `folders` must not be a file. A usage error (`ap.error`) names the
    flag, the path and the reason."""
    for flag, path in files:
        if not path:
            continue
        if os.path.isdir(path):
            ap.error(f"{flag} {path!r} is a folder; give the file to write")
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as e:
            ap.error(f"{flag} {path!r}: its folder cannot be made ({e.strerror})")
    for flag, path in folders:
        if path and os.path.exists(path) and not os.path.isdir(path):
            ap.error(f"{flag} {path!r} is a file; give a folder")
