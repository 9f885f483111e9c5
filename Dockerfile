# One image for web, worker and beat (docker-compose.yml and deploy/ pick the command; tests/test_deploy.py
# keeps them in agreement). Static files are collected at build time and served by whitenoise.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DNSAUDIT_VAR_DIR=/var/lib/dnsaudit
# Production settings wherever the image runs: DEBUG off, secure cookies, HSTS; the start is refused
# without a real SECRET_KEY and DNSAUDIT_FERNET_KEYS (see .env.example). Only the build step below,
# which needs no secrets, runs the development settings.
ENV DNSAUDIT_PRODUCTION=1
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir . && mkdir -p /var/lib/dnsaudit && useradd --system --uid 10001 --user-group --home /app dnsaudit
COPY . .
RUN DNSAUDIT_PRODUCTION=0 python manage.py collectstatic --noinput && chown -R dnsaudit /var/lib/dnsaudit
# Numeric, so Kubernetes' runAsNonRoot can verify it (deploy/ runs as 10001 too); the root filesystem may
# be read-only: only /tmp (and the beat schedule there, in deploy/) is written at run time.
USER 10001
EXPOSE 8000
CMD ["gunicorn", "dnsaudit.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]
