FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends runc && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir ./libs/common ./services/content ./services/snapshots \
      ./services/images ./services/tasks ./services/gateway ./cli
