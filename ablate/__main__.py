"""``python -m ablate``: the same command line as the ``ablate`` script."""

from ablate.cli import app

if __name__ == "__main__":
    app()
