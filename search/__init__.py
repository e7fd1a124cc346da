"""search: hyperparameter search and honest validation for Keras models.

The public surface is small; the ``search`` command is the main way in.
"""
from search.errors import DataError, SpaceError, StudyError, UserError, ValidationSchemeError
from search.space import Space, load as load_space

__version__ = "0.1.0"

__all__ = ["DataError", "Space", "SpaceError", "StudyError", "UserError", "ValidationSchemeError",
           "load_space", "__version__"]
