#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fails (exit 1) if any given reStructuredText file has a warning or error."""
import sys

import docutils.core
import docutils.utils

failed = False
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        docutils.core.publish_doctree(
            text,
            source_path=path,
            settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": sys.stderr},
        )
    except docutils.utils.SystemMessage as e:
        print(f"{path}: {e}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
