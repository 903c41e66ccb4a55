"""alert_engine: streaming, real-time alerting on negative customer feedback."""

__version__ = "0.1.0"
