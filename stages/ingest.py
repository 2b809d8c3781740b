"""DVC stage `ingest`: see sanitizer.pipeline.ingest."""

from stages import main

if __name__ == "__main__":
    main("ingest")
