"""``python -m mfphys ...``: the same as the ``mfphys`` command."""

from mfphys.cli.main import main

if __name__ == "__main__":
    main()
