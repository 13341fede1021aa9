"""`python -m connector` runs the po-connector command line."""

from connector.cli import main

main()
