"""Several instances on one virtualenv, upgraded together: the record that ties their sessions, and the run."""
