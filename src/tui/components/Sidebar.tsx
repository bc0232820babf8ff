// Who is around: online users first, verified ones marked, key changes loud.
import { Box } from "ink";
import { memo } from "react";
import type { PeerView } from "../../client/types.js";
import { sidebarRows } from "../view/sidebar-rows.js";
import { Rows } from "./Rows.js";

export interface SidebarProps {
  readonly peers: readonly PeerView[];
  readonly me: string;
  /** Including the border column. */
  readonly width: number;
  readonly height: number;
}

export const Sidebar = memo(function Sidebar({ peers, me, width, height }: SidebarProps) {
  // Border (1) and padding (1) come off the width.
  const rows = sidebarRows(peers, me, width - 2, height);
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
