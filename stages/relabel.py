"""DVC stage `relabel`: see sanitizer.pipeline.relabel."""

from stages import main

if __name__ == "__main__":
    main("relabel")
