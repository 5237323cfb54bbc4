"""Consumers built only on the public ``mmbus`` library and FastStream, as another team would."""
