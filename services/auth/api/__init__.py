"""The HTTP layer of the auth service: routes, dependencies, and error translation."""
