"""DVC stage `enhance`: see sanitizer.pipeline.enhance."""

from stages import main

if __name__ == "__main__":
    main("enhance")
