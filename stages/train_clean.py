"""DVC stage `train_clean`: see sanitizer.pipeline.train_clean."""

from stages import main

if __name__ == "__main__":
    main("train_clean")
