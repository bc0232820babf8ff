// The standard gRPC health service (grpc.health.v1.Health), so that grpc_health_probe, a
// Kubernetes gRPC probe or a load balancer can ask whether the relay serves:
//   - Check: SERVING while the relay runs, NOT_SERVING once shutdown began (and, for a relay
//     of a cluster, while its shared database is unreachable: setServing); NOT_FOUND for a
//     service name the relay does not have;
//   - Watch: the current status at once, then each change; an unknown name gets
//     SERVICE_UNKNOWN and the call stays open, as the specification asks. At shutdown watchers
//     get NOT_SERVING, then the call ends with UNAVAILABLE, so watchers never hold the orderly
//     shutdown (which waits for every call to end) until its deadline.
// Known names: "" (the relay as a whole) and the chat service. Watchers are capped, since each
// is a call the relay keeps open.
import {
  status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, type StatusObject,
} from "@grpc/grpc-js";
import {
  HealthCheckResponse_ServingStatus as ServingStatus, type HealthCheckRequest, type HealthCheckResponse, type HealthServer,
} from "../gen/grpc/health/v1/health.js";
import { ChatServiceService } from "../gen/securechat/v1/chat.js";
import { statusFor } from "./errors.js";

export { HealthService as HEALTH_SERVICE_DEFINITION } from "../gen/grpc/health/v1/health.js";

/** The chat service's full name, as health clients spell it ("securechat.v1.ChatService"). */
export const CHAT_SERVICE_NAME = ChatServiceService.session.path.split("/")[1]!;
/** Watch calls open at once; more are refused with RESOURCE_EXHAUSTED. */
export const MAX_HEALTH_WATCHERS = 100;

type WatchCall = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

export class RelayHealth {
  private serving = true;
  private stopped = false;
  private readonly watchers = new Map<WatchCall, string>();

  /** The status of a known service name; undefined for an unknown one. */
  statusOf(service: string): ServingStatus | undefined {
    if (service !== "" && service !== CHAT_SERVICE_NAME) return undefined;
    return this.serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /** Shutdown began: every known service is NOT_SERVING from now on, and watchers hear it. */
  stopServing(): void {
    this.setServing(false);
    this.stopped = true;
  }

  /** SERVING or NOT_SERVING (the shared database went or came back); watchers hear a change. No-op after stopServing. */
  setServing(serving: boolean): void {
    if (this.stopped || this.serving === serving) return;
    this.serving = serving;
    for (const [call, service] of this.watchers) {
      const status = this.statusOf(service);
      if (status !== undefined) call.write({ status });
    }
  }

  /** Ends every Watch call with this status (shutdown, after stopServing). */
  endWatches(status: StatusObject): void {
    for (const call of [...this.watchers.keys()]) {
      this.watchers.delete(call);
      call.emit("error", { code: status.code, details: status.details, metadata: status.metadata });
    }
  }

  /** The handlers to register under the health service definition. */
  implementation(): HealthServer {
    return {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        const service = call.request.service;
        const status = this.statusOf(service);
        if (status === undefined) callback(statusFor(GrpcStatus.NOT_FOUND, `this relay has no service named '${service.slice(0, 100)}'`), null);
        else callback(null, { status });
      },
      watch: (call: WatchCall) => {
        if (this.watchers.size >= MAX_HEALTH_WATCHERS) {
          const s = statusFor(GrpcStatus.RESOURCE_EXHAUSTED, "too many health watchers on this relay; use Check instead");
          call.emit("error", { code: s.code, details: s.details, metadata: s.metadata });
          return;
        }
        const service = call.request.service;
        this.watchers.set(call, service);
        const forget = (): void => {
          this.watchers.delete(call);
        };
        call.on("cancelled", forget);
        call.on("close", forget);
        call.write({ status: this.statusOf(service) ?? ServingStatus.SERVICE_UNKNOWN });
      },
    };
  }
}
