"""DVC stage `score`: see sanitizer.pipeline.score."""

from stages import main

if __name__ == "__main__":
    main("score")
