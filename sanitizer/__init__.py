"""sanitizer: find backdoor-poisoned samples in an untrusted training set and train a clean model."""

__version__ = "0.1.0"
