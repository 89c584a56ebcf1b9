"""Allow ``python -m pi_facegate`` as a synonym of the ``facegate`` command."""

from pi_facegate.cli import run

if __name__ == "__main__":
    run()
