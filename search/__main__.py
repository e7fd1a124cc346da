import os
import sys

# `python -m search` puts the working folder first on sys.path, so a pandas.py or numpy.py there would be
# imported in place of the library. Only search itself (imported already) may come from here.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from search.cli import main  # noqa: E402 (after the path is cleaned)

sys.exit(main())
