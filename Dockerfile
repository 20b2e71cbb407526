# syntax=docker/dockerfile:1
# The server's image: a static binary on distroless, run as a non-root user.
#   docker build -t sessions .
#   docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=postgres://... sessions
# compose.yaml runs it next to a PostgreSQL. Every setting of .env.example is an environment
# variable here; the image holds no .env.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no libc: the runtime image has none) and free of this machine's paths.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sessions .

# distroless/static: CA certificates, time zones and a passwd file with the nonroot user
# (65532), and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sessions /sessions
USER nonroot:nonroot
ENV PORT=3000
EXPOSE 3000
# The binary checks itself (GET /readyz on PORT): the image needs no curl.
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 CMD ["/sessions", "health"]
ENTRYPOINT ["/sessions"]
CMD ["serve"]
