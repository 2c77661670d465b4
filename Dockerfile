# A static tandem binary on a minimal base (distroless, no shell, runs as
# nonroot). Build: docker build -t tandem:dev --build-arg VERSION=$(git describe --always) .
FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=mod
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X github.com/tandem-dev/tandem/version.Stamp=${VERSION}" -o /out/tandem ./cmd/tandem

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tandem /usr/local/bin/tandem
USER nonroot:nonroot
EXPOSE 8080
# Listen on every interface inside the container; TANDEM_AUTH=jwt (with a
# TANDEM_JWT_SECRET) is then required: the node refuses to serve a
# non-loopback address without authentication.
ENV TANDEM_ADDR=0.0.0.0:8080
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["serve"]
