# The worker image used by deploy/docker-compose.yml and the Kubernetes manifests.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alert_engine ./alert_engine
RUN pip install --no-cache-dir .
COPY rules ./rules
ENV ALERT_ENGINE_RULES_DIR=/app/rules ALERT_ENGINE_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["alert-engine", "worker"]
