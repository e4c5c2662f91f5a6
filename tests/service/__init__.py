"""Running ccproxy as a service: the ccproxy command, ccp and twistd, as subprocesses."""
