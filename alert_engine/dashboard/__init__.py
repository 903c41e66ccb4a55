"""The manager's dashboard on the outcome history in PostgreSQL: the form (`form`), the figures as
the page shows them (`view`), and the page and its CSV on the worker (`page`)."""
