"""DVC stage `train_oracle`: see sanitizer.pipeline.train_oracle."""

from stages import main

if __name__ == "__main__":
    main("train_oracle")
