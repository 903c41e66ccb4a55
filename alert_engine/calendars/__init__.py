"""Working hours and holidays, written as Alertmanager's `time_intervals`, and time measured in
them: how much of a span was working time, and when a working-time duration ends."""
