// Who is around the conversation on screen: a room's members, the lobby's online users, or the
// two people of a DM; online first, verified ones marked, key changes loud.
import { Box } from "ink";
import { memo } from "react";
import type { PeerView } from "../../client/types.js";
import { scopedSidebarRows, type SidebarScope } from "../view/sidebar-rows.js";
import { Rows } from "./Rows.js";

export interface SidebarProps {
  readonly peers: readonly PeerView[];
  readonly me: string;
  /** The conversation's kind, and its room members (undefined: not joined) or DM peer. */
  readonly kind: "lobby" | "room" | "dm";
  readonly room?: string;
  readonly members?: readonly string[] | undefined;
  readonly peer?: string | undefined;
  /** Including the border column. */
  readonly width: number;
  readonly height: number;
}

export const Sidebar = memo(function Sidebar({ peers, me, kind, room, members, peer, width, height }: SidebarProps) {
  const scope: SidebarScope = kind === "room" ? { kind, room: room ?? "", members } : kind === "dm" && peer !== undefined ? { kind, peer } : { kind: "lobby" };
  // Border (1) and padding (1) come off the width.
  const rows = scopedSidebarRows(scope, peers, me, width - 2, height);
  return (
    <Box
      flexDirection="column"
      width={width}
      height={height}
      borderStyle="single"
      borderTop={false}
      borderRight={false}
      borderBottom={false}
      borderDimColor
      paddingLeft={1}
    >
      <Rows rows={rows} />
    </Box>
  );
});
