"""Serve the upload page with waitress, a production WSGI server (what `make web` and the image run): it decodes
chunked uploads, and refuses a body over the upload limit while it is being received (413), never reading it whole.
The corrections database is migrated first, so a fresh machine needs no set-up step."""

import argparse
import os

DEFAULT_LISTEN = "127.0.0.1:8000"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.serve", description=__doc__)
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to listen on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="requests served at once (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.animals_web.settings")
    import waitress
    from django.conf import settings
    from django.core.management import call_command

    from webapp.animals_web.wsgi import application

    print(f"Corrections database: {database_name(settings.DATABASES['default'])}; migrating it")
    call_command("migrate", interactive=False, verbosity=0)
    print(f"The upload page on http://{args.listen} (TorchServe at {settings.TORCHSERVE_URL}); Ctrl-C stops it")
    waitress.serve(
        application,
        listen=args.listen,
        threads=args.threads,
        max_request_body_size=settings.MAX_REQUEST_BYTES,
        ident="animals-web",
    )


def database_name(database: dict) -> str:
    """Where the corrections are kept, without the password."""
    if database["ENGINE"].endswith("sqlite3"):
        return f"SQLite {database['NAME']}"
    return f"PostgreSQL {database['NAME']} on {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}"


if __name__ == "__main__":
    main()
