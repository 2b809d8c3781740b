"""DVC stage `identify`: see sanitizer.pipeline.identify."""

from stages import main

if __name__ == "__main__":
    main("identify")
