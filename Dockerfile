# Parley's container image: one static binary (CGO_ENABLED=0) on an empty
# base image, run as an unprivileged user, with the SQLite file and the
# media directory (/data/parley-media, for attachments once Parley stores
# them) on the volume /data.
#
#   docker build -t parley --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run -p 8080:8080 -v parley-data:/data -e PARLEY_JWT_SECRET=$(openssl rand -hex 32) parley
#
# Every setting is an environment variable (-e) or a flag after the image
# name (docker run … parley serve --log-format json); see the README.

# GO_IMAGE is the build stage: any image with a POSIX shell, the Go
# toolchain of go.mod's go line or newer on PATH, and CA certificates in
# /etc/ssl/certs. CI builds with one made from the host's toolchain
# (deploy/check-image).
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (.dockerignore), so the commit comes from
# these arguments; parley version prints them.
ARG VERSION=""
ARG COMMIT=""
RUN go build -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" -o /out/parley ./cmd/parley \
	&& mkdir -p /out/data/parley-media

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/parley /parley
# 65532 is the conventional "nonroot" user of distroless images; the
# volume's directory belongs to it, and the SQLite file (parley.db, the
# default DATABASE_URL relative to the working directory) goes there.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME /data
ENV PARLEY_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/parley"]
CMD ["serve"]
