"""Rebuild the embedded Twemoji set, src/latentvar/data/twemoji32/, from the npm registry package: runs `latentvar.data.twemoji_build`, the preparation that lives next to its data (its
docstring has the details and options)."""

from latentvar.data.twemoji_build import main

if __name__ == "__main__":
    main()
