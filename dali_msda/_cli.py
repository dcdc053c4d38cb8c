"""What the command-line tools share (the training examples, the scanner, the demo, the
analysis and the benchmarks)."""

import argparse


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
