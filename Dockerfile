# A static tandem binary on a minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/tandem ./cmd/tandem

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tandem /usr/local/bin/tandem
USER nonroot
EXPOSE 8080
ENV TANDEM_ADDR=0.0.0.0:8080
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["serve"]
