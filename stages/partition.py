"""DVC stage `partition`: see sanitizer.pipeline.partition."""

from stages import main

if __name__ == "__main__":
    main("partition")
