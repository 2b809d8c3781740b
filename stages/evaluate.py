"""DVC stage `evaluate`: see sanitizer.pipeline.evaluate."""

from stages import main

if __name__ == "__main__":
    main("evaluate")
