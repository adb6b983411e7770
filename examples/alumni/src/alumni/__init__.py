"""Alumni: an outside subscriber of the Training Program Platform, built on FastStream."""
