"""gunicorn reads this file from the working directory: refuse to bind beyond loopback without a token
(the same rule as `stcnn-dashboard --host`), or to start without a run index."""


def on_starting(server):
    from dashboard.config import check_bind, check_index, load_settings

    settings = load_settings()
    check_index(settings)
    for address in server.cfg.bind:
        if address.startswith(("unix:", "fd://")):
            continue
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
        check_bind(host.strip("[]"), settings)
