/**
 * Handshake admission: who may hold a handshake slot, and for how long.
 *
 * A socket takes a slot when it is accepted and keeps it until its handshake
 * completes or fails. Slots sit in three pools: sockets that have not said
 * who they are yet, peers, and admin clients, so that neither kind can crowd
 * out the other. A full pool of the first two kinds makes room by closing its
 * oldest member: idle sockets cannot hold slots against newcomers, and a
 * genuine peer, whose handshake takes a round trip or two, is only displaced
 * by a pool's worth of newer sockets within that time. No remote address may
 * hold more than `perAddress` slots at once.
 *
 * @module
 */

/** The pools a slot can be in. */
export type SlotPool = "new" | "peer" | "admin";

/** One socket's hold on admission. */
export interface Slot {
  readonly address: string;
  pool: SlotPool;
  /** Closes the socket: it lost its slot to a newer one. */
  readonly evict: () => void;
}

/** Admission limits. */
export interface AdmissionLimits {
  /** Slots of the "new" pool, and of the "peer" pool. */
  readonly maxHandshakes: number;
  /** Slots of the "admin" pool. */
  readonly maxAdminHandshakes: number;
  /** Slots one remote address may hold in all pools together. */
  readonly perAddress: number;
}

/** Why a socket was refused a slot, or lost one. */
export type AdmissionRefusal = "address-limit" | "admin-busy";

/** Slot pools of one acceptor. */
export class Admission {
  private readonly limits: AdmissionLimits;
  private readonly pools: Record<SlotPool, Set<Slot>> = { new: new Set(), peer: new Set(), admin: new Set() };
  private readonly byAddress = new Map<string, number>();

  constructor(limits: AdmissionLimits) {
    this.limits = limits;
  }

  /** Slots held now, per pool. */
  get held(): Record<SlotPool, number> {
    return { new: this.pools.new.size, peer: this.pools.peer.size, admin: this.pools.admin.size };
  }

  /** A slot in the "new" pool for a socket from `address`, or why not. */
  admit(address: string, evict: () => void): Slot | AdmissionRefusal {
    const n = this.byAddress.get(address) ?? 0;
    if (n >= this.limits.perAddress) return "address-limit";
    this.makeRoom("new");
    this.byAddress.set(address, n + 1);
    const slot: Slot = { address, pool: "new", evict };
    this.pools.new.add(slot);
    return slot;
  }

  /**
   * Moves a slot to the pool of its kind, once its hello said which. The peer
   * pool makes room by evicting; a full admin pool refuses.
   */
  move(slot: Slot, pool: "peer" | "admin"): true | AdmissionRefusal {
    if (!this.pools[slot.pool].has(slot)) return true;
    if (pool === "admin" && this.pools.admin.size >= this.limits.maxAdminHandshakes) return "admin-busy";
    if (pool === "peer") this.makeRoom("peer");
    this.pools[slot.pool].delete(slot);
    slot.pool = pool;
    this.pools[pool].add(slot);
    return true;
  }

  /** Gives the slot back (idempotent). */
  release(slot: Slot): void {
    if (!this.pools[slot.pool].delete(slot)) return;
    const n = (this.byAddress.get(slot.address) ?? 1) - 1;
    if (n <= 0) this.byAddress.delete(slot.address);
    else this.byAddress.set(slot.address, n);
  }

  /** Evicts the oldest slots of a full pool until one is free. */
  private makeRoom(pool: "new" | "peer"): void {
    const set = this.pools[pool];
    while (set.size >= this.limits.maxHandshakes) {
      const oldest = set.values().next().value as Slot;
      this.release(oldest);
      oldest.evict();
    }
  }
}
