"""Helpers behind the real-parts fixtures in tests/conftest.py.

One concern per module, no pytest in them, so they can also be used from a REPL when a
fixture misbehaves:

    engine    find the Docker engine, or start `dockerd` and wait for it
    registry  run `docker-registry` on 127.0.0.1 (plain or htpasswd) and read its HTTP API
    images    import the busybox-static base image
    cleanup   remove the dcs-test containers and images a test created

Nothing here is part of dcs_magic; nothing here mocks anything.
"""
