"""Data options shared by every command that reads a data file (`pcc build
hclt --data`, `pcc train`, `pcc eval`, `pcc sample --given`): the file's
layout (--header, --delimiter), named data sets (--dataset) and where the
shared data lives (DATA_EPILOG, for --help).

    add_data_format_arguments(parser)      # in register()
    fmt = data_format_from_args(args)      # in run(): a pccompiler.data.DataFormat
"""

from __future__ import annotations

import argparse

DATA_EPILOG = """\
data files:
  One sample per line, values separated by --delimiter (default ','; 'tab',
  'space' for runs of spaces/tabs, or one character such as ';'), optionally
  gzipped (.gz) and optionally starting with a header row (--header).
  Categorical columns hold integers 0..num_cats-1 (any number of categories
  the model declares); Gaussian columns hold real numbers.

named data sets (--dataset NAME):
  the DEBD sets (nltcs ships with pccompiler; plants, dna, ... in the shared
  data folder) and 'mnist' (784 pixels x 256 values). Files are looked for in
  $PCC_DATA_DIR (the folder itself, then its debd/ or mnist/ subfolder), then
  in ../shared/data/<kind> beside the repository, then (nltcs) inside the
  package. Set PCC_DATA_DIR to point pcc at your copy.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions kept as written, and every option's help ends with its
    default, unless the help already says it or there is none to say (flags,
    options whose absence the help explains)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def add_data_format_arguments(parser: argparse.ArgumentParser) -> None:
    """--header and --delimiter, in their own group of `parser`'s help."""
    group = parser.add_argument_group("data file format")
    group.add_argument("--header", action="store_true",
                       help="the first non-blank line of each data file is a header (column "
                            "names) and is skipped (default: no header)")
    group.add_argument("--delimiter", default=",", metavar="CHAR",
                       help="what separates the values of a row: one character such as ';' "
                            "or '|', 'tab', or 'space' (any run of spaces and tabs) "
                            "(default: %(default)r)")


def data_format_from_args(args: argparse.Namespace):
    """The pccompiler.data.DataFormat the options ask for (DataError naming
    --delimiter when it is not a usable delimiter)."""
    from pccompiler.data.files import DataFormat
    from pccompiler.errors import DataError
    try:
        return DataFormat(delimiter=args.delimiter, header=args.header)
    except DataError as exc:
        raise DataError(f"--delimiter: {exc}") from None


def add_dataset_argument(source) -> None:
    """--dataset NAME on `source` (a parser or a mutually exclusive group)."""
    source.add_argument("--dataset", metavar="NAME",
                        help="a named data set instead of --data: a DEBD set (nltcs ships "
                             "with pccompiler) or 'mnist' (see 'named data sets' below)")
