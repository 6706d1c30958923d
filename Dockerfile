# One image for every govmeter process; the command picks the piece (see docker-compose.yml).
# The console's chart library from npm (pinned in console/package-lock.json), as scripts/console-assets.sh does.
FROM node:22-slim AS console-assets
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# A CJK font for the bills' printable PDF (GOVMETER_PDF_FONT's default path).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini ./
COPY schemas ./schemas
COPY services ./services
COPY --from=console-assets /console/node_modules/echarts/dist/echarts.min.js ./services/console/static/vendor/
COPY --from=console-assets /console/node_modules/echarts/LICENSE ./services/console/static/vendor/echarts.LICENSE
COPY migrations ./migrations
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 govmeter
USER govmeter
ENTRYPOINT ["govmeter"]
