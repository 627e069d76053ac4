class DescriptionError(ValueError):
    """A description field holds a bad value; the message names the field and what is allowed."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(f"{field}: {message}")
