"""DVC stage `train_suspect`: see sanitizer.pipeline.train_suspect."""

from stages import main

if __name__ == "__main__":
    main("train_suspect")
