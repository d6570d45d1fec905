FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -ldflags "-X main.version=docker" -o /crmpulse ./cmd/crmpulse

FROM gcr.io/distroless/static-debian12
COPY --from=build /crmpulse /crmpulse
ENTRYPOINT ["/crmpulse"]
