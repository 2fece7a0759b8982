"""kiungo: an open-source Government Enterprise Service Bus speaking the GovESB protocol."""

__version__ = "0.1.0"
